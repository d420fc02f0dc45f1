<?php
/**
 * Backup archives do not pile up: the WP-cron job deletes those past `retention_days` (30 by
 * default, as the agent) and keeps every archive still needed, under the run lock.
 *
 * @package Molam_Form_Tests
 */

/**
 * Retention of the encrypted archives in the work folder, through the real WP-cron hook, real
 * files and the real control plane.
 */
class ArchiveRetentionTest extends Molam_Form_TestCase {

	protected function setUp(): void {
		parent::setUp();
		self::no_payment_hour_due(); // These runs are about the clean-up.
	}

	/**
	 * The backups folder of the work folder.
	 *
	 * @return string
	 */
	private static function backups() {
		return Molam_Form_Settings::work_dir() . '/backups';
	}

	/**
	 * An archive file named as the upgrade names them, written `$age` seconds ago.
	 *
	 * @param string      $version Version.
	 * @param int         $age     Age in seconds.
	 * @param string|null $plugin  Plugin name (this test's by default).
	 * @param string|null $tx      Transaction id.
	 * @return string Its name.
	 */
	private function archive( $version, $age, $plugin = null, $tx = null ) {
		wp_mkdir_p( self::backups() );
		$name = sprintf( '%s-%s-%s-%s.mab', $plugin ?? $this->plugin, $version, gmdate( 'Ymd\THis\Z', time() - $age ), $tx ?? bin2hex( random_bytes( 6 ) ) );
		file_put_contents( self::backups() . "/$name", Molam_Form_Backup::MAGIC . random_bytes( 200 ) );
		return $name;
	}

	/**
	 * Names in the backups folder (symlinks included), sorted.
	 *
	 * @return string[]
	 */
	private static function names() {
		clearstatcache();
		$names = array_values( array_diff( (array) scandir( self::backups() ), array( '.', '..' ) ) );
		sort( $names );
		return $names;
	}

	/**
	 * Sorted copy.
	 *
	 * @param string[] $names Names.
	 * @return string[]
	 */
	private static function sorted( $names ) {
		sort( $names );
		return $names;
	}

	/**
	 * The clean-up's last result.
	 *
	 * @return array
	 */
	private static function last_run() {
		wp_cache_flush();
		return (array) get_option( Molam_Form_Housekeeping::LAST_RUN, array() );
	}

	public function test_the_cron_job_deletes_archives_older_than_thirty_days_and_keeps_newer_ones() {
		$ninety   = $this->archive( '3.7.0', 90 * self::DAY );
		$month    = $this->archive( '3.8.0', 31 * self::DAY );
		$recent   = $this->archive( '3.8.1', 29 * self::DAY );
		$newest   = $this->archive( '3.9.0', 2 * self::DAY );
		// Not archives: a partly written one, a bad time, another file, a folder with an archive's name.
		$part     = '.' . $this->archive( '3.6.0', 60 * self::DAY ) . '.part';
		rename( self::backups() . '/' . substr( $part, 1, -5 ), self::backups() . "/$part" );
		$this->assertFileExists( self::backups() . "/$part" );
		$bad_time = "{$this->plugin}-3.5.0-20201399T000000Z-abcdef012345.mab";
		file_put_contents( self::backups() . "/$bad_time", 'x' );
		file_put_contents( self::backups() . '/notes.txt', 'x' );
		$folder = "{$this->plugin}-3.4.0-20200101T000000Z-abcdef012346.mab";
		mkdir( self::backups() . "/$folder" );

		self::cron();

		$this->assertSame( self::sorted( array( $recent, $newest, $part, $bad_time, 'notes.txt', $folder ) ), self::names() );
		$run = self::last_run();
		$this->assertSame( 'success', $run['status'], wp_json_encode( $run ) );
		$this->assertSame( 'success', $run['archives']['status'] );
		$this->assertSame( 30, $run['archives']['retention_days'] );
		$this->assertSame( array( $ninety, $month ), array_column( $run['archives']['deleted'], 'name' ), 'oldest first' );
		$this->assertSame( array(), $run['archives']['errors'] );
		$log = get_option( Molam_Form_Housekeeping::LOG );
		$this->assertSame( array( $ninety, $month ), array_column( $log, 'name' ), 'each deletion is logged' );
		$this->assertSame( array( '3.7.0', '3.8.0' ), array_column( $log, 'version' ) );
		$this->assertSame( array( 208, 208 ), array_column( $log, 'size' ) );
	}

	public function test_the_newest_archive_of_each_plugin_is_kept_however_old() {
		$this->archive( '3.8.0', 60 * self::DAY );
		$own_newest = $this->archive( '3.9.0', 40 * self::DAY );
		$this->archive( '1.0.0', 200 * self::DAY, 'other-shop' );
		$other_newest = $this->archive( '1.1.0', 100 * self::DAY, 'other-shop' );

		self::cron();

		$this->assertSame( self::sorted( array( $own_newest, $other_newest ) ), self::names() );
	}

	public function test_the_archive_of_the_version_kept_for_a_forced_rollback_stays_after_the_retention() {
		$this->publish( $this->build_release( '4.0.0' ) );
		$this->assertSame( 'success', $this->upgrade()['status'] );
		$made = glob( self::backups() . '/*.mab' );
		$this->assertCount( 1, $made, 'the upgrade archived 3.9.0' );
		$txid = Molam_Form_Store::load( 'current.json' )['txid'];
		$this->assertStringEndsWith( "-$txid.mab", $made[0] );
		// Forty days later; a later upgrade attempt archived 4.0.0 35 days ago and was rolled back.
		$aged = sprintf( '%s-3.9.0-%s-%s.mab', $this->plugin, gmdate( 'Ymd\THis\Z', time() - 40 * self::DAY ), $txid );
		rename( $made[0], self::backups() . "/$aged" );
		$attempt = $this->archive( '4.0.0', 35 * self::DAY );
		$this->archive( '3.8.0', 50 * self::DAY );

		self::cron();

		$this->assertSame( self::sorted( array( $aged, $attempt ) ), self::names(), '3.9.0 is what a forced rollback returns to; 4.0.0 is the newest' );
	}

	public function test_archives_a_queued_report_names_or_belongs_to_are_kept() {
		$named  = $this->archive( '3.7.0', 45 * self::DAY );
		$tx     = bin2hex( random_bytes( 6 ) );
		$owned  = $this->archive( '3.8.0', 44 * self::DAY, null, $tx );
		$this->archive( '3.8.1', 43 * self::DAY );
		$newest = $this->archive( '3.9.0', self::DAY );
		$this->set_settings( array( 'api_url' => self::dead_url() ) );
		Molam_Form_Outbox::enqueue(
			'POST',
			'backup',
			array(
				'version'          => '3.7.0',
				'backup_path'      => self::backups() . "/$named",
				'db_snapshot_name' => null,
				'backup_status'    => 'pending',
			),
			'0123456789ab-backup'
		);
		self::enqueue_failed_upgrade( "$tx-upgrade" );

		self::cron();

		$this->assertCount( 2, Molam_Form_Outbox::pending(), 'the control plane is unreachable: both reports wait' );
		$this->assertSame( self::sorted( array( $named, $owned, $newest ) ), self::names() );
	}

	public function test_nothing_is_deleted_while_a_journal_says_an_operation_is_unfinished() {
		$tx      = bin2hex( random_bytes( 6 ) );
		$work    = Molam_Form_Settings::work_dir();
		$mine    = $this->archive( '3.9.0', 60 * self::DAY, null, $tx );
		$other   = $this->archive( '3.8.0', 70 * self::DAY );
		$newest  = $this->archive( '3.9.0', self::DAY );
		// A rollback that failed and cannot finish (its previous tree is gone): the journal stays
		// and checkout stays paused until someone repairs the shop.
		Molam_Form_Store::$journal = array();
		Molam_Form_Store::step(
			'rollback_failed',
			array(
				'txid'           => $tx,
				'attempt'        => 0,
				'op'             => 'upgrade',
				'trigger'        => 'automatic',
				'plugin'         => $this->plugin,
				'from_version'   => '3.9.0',
				'to_version'     => '4.0.0',
				'release_sha256' => str_repeat( '0', 64 ),
				'started_at'     => microtime( true ),
				'archive'        => self::backups() . "/$mine",
				'paths'          => array(
					'staging'  => "$work/staging-$tx",
					'download' => "$work/download-$tx.zip",
					'aside'    => "$work/prev-3.9.0-$tx",
					'trash'    => "$work/failed-4.0.0-$tx",
				),
				'files'          => array(
					'live'         => self::live_dir(),
					'target_inode' => 1,
					'other_inode'  => Molam_Form_Store::inode( self::live_dir() ),
					'candidates'   => array( "$work/prev-3.9.0-$tx" ),
					'trash'        => "$work/failed-4.0.0-$tx",
				),
				'error'          => 'smoke test failed',
			)
		);
		Molam_Form_Store::$journal = array();

		self::cron();

		$this->assertSame( 'rollback_failed', Molam_Form_Store::load( 'journal.json' )['step'], 'recovery failed again: the operation is still unfinished' );
		$this->assertSame( self::sorted( array( $mine, $other, $newest ) ), self::names() );
		$run = self::last_run();
		$this->assertSame( 'skipped', $run['archives']['status'], wp_json_encode( $run ) );
		$this->assertStringContainsString( 'journal step rollback_failed', $run['archives']['reason'] );

		// Repaired by hand: the journal is gone, the next run prunes.
		Molam_Form_Store::journal_clear();
		Molam_Form_Store::maintenance_off();
		$this->assertSame( array(), Molam_Form_Outbox::pending() );
		self::cron();

		$this->assertSame( array( $newest ), self::names() );
	}

	public function test_a_journal_that_cannot_be_read_keeps_every_archive_too() {
		$old    = $this->archive( '3.8.0', 60 * self::DAY );
		$newest = $this->archive( '3.9.0', self::DAY );
		// Half a journal (a disk that filled up under another tool, a hand edit): its operation is unknown.
		file_put_contents( Molam_Form_Settings::work_dir() . '/journal.json', '{"txid": "0123456789ab", "step": "swa' );

		self::cron();

		$this->assertSame( self::sorted( array( $old, $newest ) ), self::names() );
		$run = self::last_run();
		$this->assertSame( 'skipped', $run['archives']['status'], wp_json_encode( $run ) );
		$this->assertStringContainsString( 'journal step unknown', $run['archives']['reason'] );

		unlink( Molam_Form_Settings::work_dir() . '/journal.json' );
		self::cron();

		$this->assertSame( array( $newest ), self::names() );
	}

	public function test_a_symlink_in_the_backups_folder_is_neither_followed_nor_deleted() {
		$outside = getenv( 'MOLAM_TEST_TMP' ) . '/outside-' . bin2hex( random_bytes( 4 ) );
		mkdir( $outside );
		$target = "$outside/" . sprintf( '%s-3.0.0-%s-%s.mab', $this->plugin, gmdate( 'Ymd\THis\Z', time() - 400 * self::DAY ), 'aaaaaaaaaaaa' );
		file_put_contents( $target, 'not the plugin\'s to delete' );
		$sum       = hash_file( 'sha256', $target );
		$old_link  = sprintf( '%s-3.1.0-%s-%s.mab', $this->plugin, gmdate( 'Ymd\THis\Z', time() - 300 * self::DAY ), 'bbbbbbbbbbbb' );
		$new_link  = sprintf( '%s-9.9.9-%s-%s.mab', $this->plugin, gmdate( 'Ymd\THis\Z', time() - 60 ), 'cccccccccccc' );
		$old       = $this->archive( '3.8.0', 50 * self::DAY );
		$kept      = $this->archive( '3.9.0', 40 * self::DAY );
		symlink( $target, self::backups() . "/$old_link" );
		symlink( $target, self::backups() . "/$new_link" );

		self::cron();

		$this->assertSame( self::sorted( array( $old_link, $new_link, $kept ) ), self::names(), 'the newest real archive stays: a newer symlink does not count as one' );
		$this->assertTrue( is_link( self::backups() . "/$old_link" ) );
		$this->assertSame( $target, readlink( self::backups() . "/$old_link" ) );
		$this->assertSame( $sum, hash_file( 'sha256', $target ), 'the file outside is untouched' );
		$this->assertNotContains( $old, self::names() );
	}

	public function test_a_backups_folder_that_is_a_symlink_out_of_the_work_folder_is_not_read() {
		$outside = getenv( 'MOLAM_TEST_TMP' ) . '/outside-' . bin2hex( random_bytes( 4 ) );
		mkdir( $outside );
		$names = array();
		foreach ( array( 90, 80, 1 ) as $days ) {
			$names[] = $name = sprintf( '%s-3.%d.0-%s-%s.mab', $this->plugin, $days, gmdate( 'Ymd\THis\Z', time() - $days * self::DAY ), bin2hex( random_bytes( 6 ) ) );
			file_put_contents( "$outside/$name", 'x' );
		}
		Molam_Form_Store::prepare();
		symlink( $outside, self::backups() );

		self::cron();

		$found = array_values( array_diff( scandir( $outside ), array( '.', '..' ) ) );
		$this->assertSame( self::sorted( $names ), self::sorted( $found ) );
		$run = self::last_run();
		$this->assertSame( 'skipped', $run['archives']['status'], wp_json_encode( $run ) );
		$this->assertStringContainsString( 'not a plain folder inside the work folder', $run['archives']['reason'] );
	}

	public function test_a_run_that_cannot_take_the_lock_deletes_nothing_and_the_next_one_does() {
		$old    = $this->archive( '3.8.0', 50 * self::DAY );
		$newest = $this->archive( '3.9.0', self::DAY );
		// Another open file description holding the flock: what a run in another process does.
		$fh = fopen( Molam_Form_Store::prepare() . '/lock', 'c' );
		$this->assertTrue( flock( $fh, LOCK_EX | LOCK_NB ) );
		try {
			self::cron();
		} finally {
			flock( $fh, LOCK_UN );
			fclose( $fh );
		}

		$this->assertSame( self::sorted( array( $old, $newest ) ), self::names() );
		$this->assertSame( 'skipped', self::last_run()['status'] );
		$this->assertFalse( get_option( Molam_Form_Housekeeping::LOG ) );

		self::cron();

		$this->assertSame( array( $newest ), self::names() );
	}

	public function test_the_retention_is_filterable_and_never_under_a_day() {
		$ten_days = $this->archive( '3.8.0', 10 * self::DAY );
		$hours    = $this->archive( '3.8.1', 20 * 3600 );
		$newest   = $this->archive( '3.9.0', 60 );
		self::cron();
		$this->assertSame( self::sorted( array( $ten_days, $hours, $newest ) ), self::names(), 'within 30 days' );

		$week = fn() => 7;
		add_filter( 'molam_form_backup_retention_days', $week );
		try {
			self::cron();
			$this->assertSame( self::sorted( array( $hours, $newest ) ), self::names() );
			remove_filter( 'molam_form_backup_retention_days', $week );
			add_filter( 'molam_form_backup_retention_days', fn() => 0 );
			self::cron();
			$this->assertSame( self::sorted( array( $hours, $newest ) ), self::names(), 'a retention of 0 is a day' );
			$this->assertSame( 1, self::last_run()['archives']['retention_days'] );
		} finally {
			remove_all_filters( 'molam_form_backup_retention_days' );
		}
	}

	public function test_a_run_deletes_at_most_fifty_archives_and_the_next_one_goes_on() {
		$old = array();
		for ( $i = 0; $i < 60; $i++ ) {
			$old[] = $this->archive( "3.$i.0", ( 100 + $i ) * self::DAY );
		}
		$newest = $this->archive( '4.0.0', self::DAY );

		self::cron();

		$this->assertCount( 11, self::names() );
		$run = self::last_run()['archives'];
		$this->assertCount( Molam_Form_Housekeeping::DELETE_PER_RUN, $run['deleted'] );
		$this->assertSame( 10, $run['left'] );
		$this->assertSame( array_reverse( array_slice( $old, 10 ) ), array_column( $run['deleted'], 'name' ), 'the oldest go first' );

		self::cron();

		$this->assertSame( array( $newest ), self::names() );
		$this->assertCount( 60, get_option( Molam_Form_Housekeeping::LOG ) );
	}
}
