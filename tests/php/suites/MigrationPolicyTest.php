<?php
/**
 * The migration policy agrees with the agent's on the shared vectors.
 *
 * @package Molam_Form_Tests
 */

use PHPUnit\Framework\TestCase;

/**
 * tests/fixtures/migration_policy_cases.json is the contract between molam_agent/policy.py
 * and Molam_Form_Migrations: same SQL, same tables, same class.
 */
class MigrationPolicyTest extends TestCase {

	/**
	 * The shared vectors.
	 *
	 * @return array
	 */
	public function vectors() {
		$file = dirname( __DIR__, 2 ) . '/fixtures/migration_policy_cases.json';
		$this->assertFileExists( $file );
		$cases = json_decode( (string) file_get_contents( $file ), true );
		$this->assertIsArray( $cases );
		return $cases;
	}

	public function test_the_shared_vector_file_covers_all_three_classes() {
		$classes = array_count_values( array_column( $this->vectors(), 'class' ) );
		$this->assertGreaterThanOrEqual( 5, $classes['expand'] ?? 0 );
		$this->assertGreaterThanOrEqual( 5, $classes['contract'] ?? 0 );
		$this->assertGreaterThanOrEqual( 5, $classes['refused'] ?? 0 );
	}

	public function test_every_shared_vector_is_classified_as_the_agent_classifies_it() {
		$wrong = array();
		foreach ( $this->vectors() as $case ) {
			list( $class, $why ) = Molam_Form_Migrations::classify( $case['sql'], $case['tables'], $case['options_table'] ?? null );
			if ( $class !== $case['class'] ) {
				$wrong[] = "{$case['class']} expected, $class given ($why): {$case['sql']}";
			}
		}
		$this->assertSame( array(), $wrong );
	}

	public function test_a_file_takes_the_class_of_its_worst_statement() {
		$tables = array( 'wp_molam_orders' );
		$this->assertSame( 'expand', Molam_Form_Migrations::classify( "ALTER TABLE wp_molam_orders ADD COLUMN a INT NULL;\nCREATE INDEX i ON wp_molam_orders (a);", $tables, 'wp_options' )[0] );
		$this->assertSame( 'contract', Molam_Form_Migrations::classify( "ALTER TABLE wp_molam_orders ADD COLUMN a INT NULL;\nALTER TABLE wp_molam_orders DROP COLUMN b;", $tables, 'wp_options' )[0] );
		$this->assertSame( 'refused', Molam_Form_Migrations::classify( "ALTER TABLE wp_molam_orders DROP COLUMN b;\nDROP TABLE wp_users;", $tables, 'wp_options' )[0] );
	}

	public function test_semicolons_inside_quotes_and_comments_do_not_split_statements() {
		$sql = "INSERT INTO wp_options (option_name, option_value) VALUES ('molam_a', 'x;y'); -- c; d\n/* e; f */ CREATE TABLE wp_molam_x (id INT)";
		$this->assertSame( array( "INSERT INTO wp_options (option_name, option_value) VALUES ('molam_a', 'x;y')", 'CREATE TABLE wp_molam_x (id INT)' ), Molam_Form_Migrations::split( $sql ) );
	}

	public function test_the_python_agent_gives_the_same_class_on_the_same_statements() {
		$stmts = array(
			'ALTER TABLE wp_molam_orders ADD COLUMN x INT NULL',
			'ALTER TABLE wp_molam_orders ADD COLUMN x INT NOT NULL',
			'UPDATE wp_molam_orders SET status = 1',
			'DELETE FROM wp_users',
			"INSERT INTO wp_options (option_name) VALUES ('molam_gateway_x')",
			'CREATE TABLE wp_molam_refunds LIKE wp_molam_orders',
			'ALTER TABLE wp_molam_orders ADD COLUMN c INT, ADD INDEX i (c)',
			'CREATE TABLE wp_molam_refunds (id INT, o BIGINT REFERENCES wp_posts (ID))',
		);
		$code = 'import json,sys; from molam_agent.policy import classify_script, script_class; ' .
			'print(json.dumps([script_class(classify_script(s, ["wp_molam_orders","wp_molam_refunds"], "wp_options")) for s in json.load(sys.stdin)]))';
		list( $status, $out, $err ) = Molam_Form_TestCase::run_python( $code, wp_json_encode( $stmts ) );
		$this->assertSame( 0, $status, $err );
		$php = array_map( fn( $s ) => Molam_Form_Migrations::classify( $s, array( 'wp_molam_orders', 'wp_molam_refunds' ), 'wp_options' )[0], $stmts );
		$this->assertSame( json_decode( $out, true ), $php );
	}
}
