<?php
/**
 * Operator-forced rollbacks: performed on the next run when they match, refused otherwise.
 *
 * @package Molam_Form_Tests
 */

/**
 * `GET rollback/pending` drives the merchant's next run.
 */
class ForcedRollbackTest extends Molam_Form_TestCase {

	/**
	 * Upgrade to 4.0.0 through the real control plane, then pause its rollout.
	 */
	private function upgraded() {
		$this->publish( $this->build_release( '4.0.0' ) );
		$this->assertSame( 'success', $this->upgrade()['status'] );
		$this->new_tree = self::tree( self::live_dir() );
	}

	/**
	 * Files of 4.0.0.
	 *
	 * @var array
	 */
	private $new_tree;

	/**
	 * The control plane's row for a rollback id.
	 *
	 * @param string $rid Rollback id.
	 * @return array
	 */
	private function cp_rollback( $rid ) {
		$rows = $this->cp_rows( 'SELECT * FROM plugin_rollback_history WHERE rollback_id IN (?, ?)', array( $rid, str_replace( '-', '', $rid ) ) );
		$this->assertCount( 1, $rows );
		return $rows[0];
	}

	public function test_a_forced_rollback_from_another_version_is_refused_and_completed_as_failed() {
		$this->upgraded();
		$rid = $this->force_rollback( '4.1.0', '3.9.0' );

		$result = $this->upgrade();

		$this->assertSame( 'failed', $result['status'] );
		$this->assertStringContainsString( 'it was issued for version 4.1.0 but 4.0.0 is installed', $result['error'] );
		$this->assertSame( $this->new_tree, self::tree( self::live_dir() ), 'nothing rolled back' );
		$row = $this->cp_rollback( $rid );
		$this->assertSame( 0, (int) $row['success'] );
		$this->assertStringContainsString( 'forced rollback refused', $row['error_message'] );
	}

	public function test_a_forced_rollback_older_than_the_limit_is_refused() {
		$this->upgraded();
		$rid = $this->force_rollback( '4.0.0', '3.9.0' );
		$this->set_settings( array( 'forced_rollback_max_age_s' => 1 ) );
		sleep( 2 );

		$result = $this->upgrade();

		$this->assertSame( 'failed', $result['status'] );
		$this->assertStringContainsString( 'older than forced_rollback_max_age_s (1 s)', $result['error'] );
		$this->assertSame( $this->new_tree, self::tree( self::live_dir() ) );
		$this->assertSame( 0, (int) $this->cp_rollback( $rid )['success'] );
	}

	public function test_a_forced_rollback_to_a_version_not_kept_here_is_completed_as_failed() {
		$rid = $this->force_rollback( '3.9.0', '3.8.0' );

		$result = $this->upgrade();

		$this->assertSame( 'failed', $result['status'] );
		$this->assertStringContainsString( 'no kept copy of version 3.8.0', $result['error'] );
		$this->assertWhollyOld();
		$row = $this->cp_rollback( $rid );
		$this->assertSame( 0, (int) $row['success'] );
		$this->assertNotNull( $row['completed_at'] );
	}

	public function test_a_forced_rollback_to_the_installed_version_is_completed_without_change() {
		$rid = $this->force_rollback( '4.0.0', '3.9.0' );
		// The operator's rollback targets 3.9.0, which is what this host runs.
		$result = $this->upgrade();

		$this->assertSame( 'success', $result['rollback_status'], wp_json_encode( $result ) );
		$this->assertWhollyOld();
		$this->assertSame( 1, (int) $this->cp_rollback( $rid )['success'] );
	}

	public function test_after_a_forced_rollback_the_version_is_on_hold() {
		$this->upgraded();
		$this->force_rollback( '4.0.0', '3.9.0' );
		$this->assertSame( 'success', $this->upgrade()['rollback_status'] );

		$next = $this->upgrade();

		$this->assertSame( 'skipped', $next['status'] );
		$this->assertStringContainsString( 'on hold', $next['reason'] );
		$this->assertWhollyOld();
	}
}
